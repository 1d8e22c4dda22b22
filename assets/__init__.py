"""Assets: the pipeline's logic, from raw deliveries to partner outputs. Never imports ``pipelines``."""
