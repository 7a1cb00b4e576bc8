"""Generated protobuf modules for graph.pbtxt (``scripts/gen_graph_protos.sh``); do not edit the ``*_pb2`` files.

Vendored .proto sources, unchanged:
- ``mediapipe/framework/{calculator,calculator_options,mediapipe_options,packet_factory,packet_generator,
  status_handler,stream_handler}.proto`` from google-ai-edge/mediapipe (commit 593d6b9d6f0a),
  the CalculatorGraphConfig every graph.pbtxt is an instance of;
- ``embeddings/embeddings_calculator_ov.proto`` and ``rerank/rerank_calculator_ov.proto`` from
  openvinotoolkit/model_server ``src/embeddings`` and ``src/rerank`` (OVMS 2026.3, commit 3bc128675 and 6d4a2218e);
- ``sparse/sparse_embeddings_calculator_ov.proto``: ovembed's own SparseEmbeddingsCalculatorOVOptions (OVMS has
  no sparse calculator), written in the style of OVMS's options protos;
- ``token/token_embeddings_calculator_ov.proto``: ovembed's own TokenEmbeddingsCalculatorOVOptions (late
  interaction: one vector per token), likewise;
- ``classify/classification_calculator_ov.proto``: ovembed's own ClassificationCalculatorOVOptions (sequence
  classification with several labels), likewise;
- ``legacy/embeddings_calculator_ov_2025_2.proto``: ``src/embeddings/embeddings_calculator_ov.proto`` as OVMS
  2025.2 shipped it (commit 8f4918f7b: ``mean_pooling`` instead of the ``pooling`` enum).
"""
