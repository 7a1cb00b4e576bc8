"""The serving engine without HTTP: ``ovembed.load`` (:mod:`.model`), ``ovembed embed`` corpus jobs
(:mod:`.job`) and OpenAI batch files (:mod:`.batchfile`).

Everything here runs the server's own registry, servables, tokenizer, batcher and use cases on a
private event loop; only the transport differs. Nothing here imports torch.
"""
