"""The machine a run measured on: a fingerprint stored with every run, and the hardware class that keys rankings."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
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
    """What NVML (through nvidia-smi) and torch report about one GPU; empty without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return {}
    props = torch.cuda.get_device_properties(device_index)
    info: dict[str, Any] = {
        "gpu_name": props.name,
        "compute_capability": f"{props.major}.{props.minor}",
        "gpu_memory_bytes": int(props.total_memory),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }
    info.update(nvidia_smi_query(device_index))
    return info


NVIDIA_SMI_FIELDS = {
    "uuid": "gpu_uuid",
    "driver_version": "driver",
    "power.limit": "power_limit_w",
    "clocks.sm": "sm_clock_mhz",
    "clocks.max.sm": "sm_clock_max_mhz",
    "clocks.mem": "mem_clock_mhz",
    "ecc.mode.current": "ecc",
    "mig.mode.current": "mig",
    "temperature.gpu": "temperature_c",
}


def nvidia_smi_query(device_index: int = 0) -> dict[str, Any]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return {}
    try:
        out = subprocess.run(
            [
                exe,
                f"--id={device_index}",
                f"--query-gpu={','.join(NVIDIA_SMI_FIELDS)}",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.strip()
    except (subprocess.SubprocessError, OSError):
        return {}
    values = [v.strip() for v in out.split(",")]
    return {
        key: value for key, value in zip(NVIDIA_SMI_FIELDS.values(), values, strict=False) if value not in ("", "[N/A]")
    }


def gpu_compute_processes(device_index: int = 0) -> list[str]:
    """Other compute processes on the GPU (their pids), which make a latency figure untrustworthy."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run(
            [exe, f"--id={device_index}", "--query-compute-apps=pid", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    own = str(os.getpid())
    return [pid.strip() for pid in out.splitlines() if pid.strip() and pid.strip() != own]


def fingerprint(device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    import torch

    env: dict[str, Any] = {
        "device": device,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads or torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": __import__("numpy").__version__,
        "harness": harness.__version__,
    }
    try:
        import torchvision

        env["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    try:
        import tensorrt  # type: ignore[import-not-found]

        env["tensorrt"] = tensorrt.__version__
    except ImportError:
        env["tensorrt"] = None
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
    stable = {k: v for k, v in env.items() if k not in {"sm_clock_mhz", "mem_clock_mhz", "temperature_c"}}
    return hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()[:16]
