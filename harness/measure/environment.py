"""The machine a run measured on: a fingerprint stored with every run, and the hardware class that keys rankings."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import harness


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_info(device_index: int = 0) -> dict[str, Any]:
    """What torch and NVML (through nvidia-smi) report about one GPU; empty without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return {}
    props = torch.cuda.get_device_properties(device_index)
    info: dict[str, Any] = {
        "gpu_name": props.name,
        "compute_capability": f"{props.major}.{props.minor}",
        "gpu_memory_bytes": int(props.total_memory),
        "multiprocessors": int(props.multi_processor_count),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }
    info.update(nvidia_smi_query(device_index))
    return info


NVIDIA_SMI_FIELDS = {
    "uuid": "gpu_uuid",
    "driver_version": "driver",
    "power.limit": "power_limit_w",
    "power.max_limit": "power_max_limit_w",
    "clocks.sm": "sm_clock_mhz",
    "clocks.max.sm": "sm_clock_max_mhz",
    "clocks.mem": "mem_clock_mhz",
    "clocks.max.mem": "mem_clock_max_mhz",
    "clocks.applications.graphics": "sm_clock_application_mhz",
    "ecc.mode.current": "ecc",
    "mig.mode.current": "mig",
    "persistence_mode": "persistence_mode",
    "compute_mode": "compute_mode",
    "pcie.link.gen.current": "pcie_gen",
    "temperature.gpu": "temperature_c",
}


def nvidia_smi_id(device_index: int = 0) -> str:
    """How nvidia-smi names the GPU torch calls `cuda:device_index`: by UUID, since CUDA_VISIBLE_DEVICES
    and containers renumber devices."""
    try:
        import torch

        uuid = str(torch.cuda.get_device_properties(device_index).uuid)
        if uuid:
            return uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
    except Exception:
        pass
    return str(device_index)


def _smi(fields: list[str], device_index: int) -> list[str] | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run(
            [
                exe,
                f"--id={nvidia_smi_id(device_index)}",
                f"--query-gpu={','.join(fields)}",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.strip()
    except (subprocess.SubprocessError, OSError):
        return None
    return [v.strip() for v in out.splitlines()[0].split(",")] if out else None


def nvidia_smi_query(device_index: int = 0) -> dict[str, Any]:
    """The fingerprint fields nvidia-smi can read. One unknown field (older drivers) fails a whole query,
    so on failure each field is asked for alone."""
    fields = list(NVIDIA_SMI_FIELDS)
    values = _smi(fields, device_index)
    if values is None or len(values) != len(fields):
        if shutil.which("nvidia-smi") is None:
            return {}
        values = [(_smi([f], device_index) or [""])[0] for f in fields]
    return {NVIDIA_SMI_FIELDS[f]: v for f, v in zip(fields, values, strict=True) if v not in ("", "[N/A]", "N/A")}


# SM clock during timing -------------------------------------------------------------------------------

CLOCK_TOLERANCE = 0.03  # boost clocks move in small steps; below max by more than this is "under its maximum"


def read_sm_clock(device_index: int = 0, keep_busy: Callable[[], Any] | None = None) -> dict[str, float] | None:
    """The SM clock and its maximum, read once through nvidia-smi. An idle GPU drops its clock within
    milliseconds, so `keep_busy` (the model's forward step) is run while nvidia-smi reads, and the reading
    reflects the clock the model runs at. Never polled during the timed repeats themselves."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    cmd = [
        exe,
        f"--id={nvidia_smi_id(device_index)}",
        "--query-gpu=clocks.sm,clocks.max.sm",
        "--format=csv,noheader,nounits",
    ]
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    except OSError:
        return None
    calls = 0
    try:
        while keep_busy is not None and proc.poll() is None and calls < 100_000:
            keep_busy()
            calls += 1
            if calls % 8 == 0:
                import torch

                torch.cuda.synchronize()  # bound the queue so the reading and the work stay together
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        return None
    finally:
        if keep_busy is not None:
            import torch

            torch.cuda.synchronize()
    try:
        current, maximum = (float(v) for v in out.strip().splitlines()[0].split(","))
    except (ValueError, IndexError):
        return None
    return {"sm_clock_mhz": current, "sm_clock_max_mhz": maximum}


def clock_noise_reasons(before: dict[str, float] | None, after: dict[str, float] | None) -> list[str]:
    """ "SM clock under its maximum" for a reading before or after the timed section."""
    reasons = []
    for when, reading in (("before", before), ("after", after)):
        if not reading or not reading.get("sm_clock_max_mhz"):
            continue
        current, maximum = reading["sm_clock_mhz"], reading["sm_clock_max_mhz"]
        if current < maximum * (1.0 - CLOCK_TOLERANCE):
            reasons.append(f"SM clock {current:.0f} MHz under its maximum {maximum:.0f} MHz ({when} timing)")
    return reasons


def gpu_compute_processes(device_index: int = 0) -> list[str]:
    """Other compute processes on the GPU (their pids), which make a latency figure untrustworthy."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run(
            [exe, f"--id={nvidia_smi_id(device_index)}", "--query-compute-apps=pid", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    # This process, and the harness process that started it (it waits, idle, holding at most a context).
    ours = {str(os.getpid()), str(os.getppid())}
    return [pid.strip() for pid in out.splitlines() if pid.strip() and pid.strip() not in ours]


def package_version(name: str) -> str | None:
    """A package's `__version__` without importing it where it is not imported yet: importing torchvision
    pulls in torch._dynamo (seconds), and the harness process fingerprints the machine before every evaluate.
    Reads the `version.py` that torch, torchvision and TensorRT ship (the same string as `__version__`, local
    build tag included: 2.14.1+cu130), else the installed distribution's metadata."""
    import importlib.metadata
    import importlib.util
    import re
    import sys

    module = sys.modules.get(name)
    if module is not None and isinstance(getattr(module, "__version__", None), str):
        return module.__version__
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return None
    for folder in spec.submodule_search_locations or []:
        try:
            with open(os.path.join(folder, "version.py"), encoding="utf-8") as fh:
                found = re.search(r"^__version__\s*(?::\s*str\s*)?=\s*['\"]([^'\"]+)['\"]", fh.read(), re.M)
        except OSError:
            continue
        if found:
            return found.group(1)
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def default_threads() -> int:
    """Half the cores, at most 4: intra-op threads that compete with other processes for a core spin in
    barriers and can inflate CPU latency by orders of magnitude."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def fingerprint(device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    env: dict[str, Any] = {
        "device": device,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "numpy": package_version("numpy"),
        "harness": harness.__version__,
    }
    torchvision = package_version("torchvision")
    if torchvision is not None:
        env["torchvision"] = torchvision
    env["tensorrt"] = package_version("tensorrt")
    if device.startswith("cuda"):
        index = int(device.split(":")[1]) if ":" in device else 0
        env.update(gpu_info(index))
    return env


def hardware_class(env: dict[str, Any]) -> str:
    """The key that rankings compare within: same chip, driver major and CUDA major; or CPU model + threads."""
    if env.get("gpu_name"):
        driver = str(env.get("driver", "?")).split(".")[0]
        cuda = str(env.get("cuda", "?")).split(".")[0]
        return f"{env['gpu_name']} / driver {driver} / CUDA {cuda}"
    return f"CPU {env.get('cpu_model', '?')} / {env.get('threads', '?')} threads"


def fingerprint_hash(env: dict[str, Any]) -> str:
    stable = {k: v for k, v in env.items() if k not in {"sm_clock_mhz", "mem_clock_mhz", "temperature_c", "pcie_gen"}}
    return hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()[:16]
