"""The filters' logic: quality and repetition rules (Gopher, C4, FineWeb, code), language id, PII,
blocklists, word lists, the KL outlier score, the classifier and its embeddings, and the text helpers
they share. Each module is plain functions or a small class over a document's text; the steps in
``pretrain.data.curate.steps`` wire them into a pipeline."""
