"""KServe v2 gRPC front end: ``service`` (the RPCs) and ``server`` (start/stop).

``grpc_predict_v2_pb2*`` are generated from ``grpc_predict_v2.proto`` by scripts/gen_grpc.sh;
do not edit them by hand. Nothing here is imported unless ``--port`` turns gRPC on.
"""
