"""rag_job: distributed RAG fine-tuning on Ray, with retrieval served by Ray actors."""

import logging

# FAISS logs every SIMD variant it fails to load at INFO; one line per worker is noise.
logging.getLogger("faiss.loader").setLevel(logging.WARNING)

__version__ = "0.1.0"
