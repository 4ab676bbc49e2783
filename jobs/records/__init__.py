"""What a run leaves about itself under ``OUT/_runs``: its manifest (config, model, plan, attempts, counts) and
the run to resume found by its fingerprint."""
