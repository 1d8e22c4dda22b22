"""I/O resources: files, HTTP APIs, the lake and the warehouse. They know bytes and tables, not the pipeline."""
