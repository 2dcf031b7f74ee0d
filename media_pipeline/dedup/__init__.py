"""Near-duplicate detection beyond the pHash: border-trimmed and mirror hashes, image embeddings,
the evaluation set they are calibrated on, and the stage that keeps them in the catalog."""
