// Package sinkpb holds the generated gRPC code of the sink plugin protocol (sink.proto).
//
// Do not edit the *.pb.go files; change sink.proto and run `go generate ./sink/...`
// (generate.sh installs the pinned protoc-gen-go and protoc-gen-go-grpc into ./.bin).
package sinkpb

//go:generate bash generate.sh
