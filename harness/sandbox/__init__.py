"""What runs inside the sandbox: the ingestion driver, its passes, and the typed measurements it writes.

Everything here runs beside untrusted submission code, with the split's inputs (images and ids, never labels)
and one writable output folder. It never imports the service layer, the store or the runners; what it writes
(`predictions.npz`, `measurements.json`, `error.json`) is re-checked on the host by `harness.verify`.
"""
