"""The project's NLU: MiniLM sentence embeddings, its classifier component and its spaCy pipeline."""
