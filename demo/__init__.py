"""The demo region: deterministic synthetic deliveries for a region YAML, plus a truth file.

``demo.generate.generate_region`` is the entry point. Only ``demo/`` and ``tests/`` import this
package: the pipeline reads the generated files exactly as it would read real partners' ones.
"""
