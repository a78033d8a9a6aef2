# docs: architecture, on-disk and wire formats, operations.
dist_doc_DATA += docs/architecture.md docs/testing.md
