package rpc

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// JSONCodec is the Connect JSON codec the server uses: protojson that
// writes every field, so that a denial says "allow": false and entry 0 says
// "index": "0", rather than leaving them out as proto3 JSON does by default.
type JSONCodec struct{}

// Name implements connect.Codec.
func (JSONCodec) Name() string { return "json" }

// Marshal implements connect.Codec.
func (JSONCodec) Marshal(m any) ([]byte, error) {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("json codec: %T is not a protobuf message", m)
	}
	return protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(pm)
}

// Unmarshal implements connect.Codec.
func (JSONCodec) Unmarshal(data []byte, m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return fmt.Errorf("json codec: %T is not a protobuf message", m)
	}
	if len(data) == 0 {
		data = []byte("{}")
	}
	return protojson.Unmarshal(data, pm)
}

// ProtoCodec is the Connect binary codec the server uses: protobuf that
// discards unknown fields when it decodes a request, so bytes a client adds
// beyond the schema (inside a Timestamp, say) can never reach the log.
type ProtoCodec struct{}

// Name implements connect.Codec.
func (ProtoCodec) Name() string { return "proto" }

// Marshal implements connect.Codec.
func (ProtoCodec) Marshal(m any) ([]byte, error) {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("proto codec: %T is not a protobuf message", m)
	}
	return proto.Marshal(pm)
}

// MarshalAppend implements connect's appending codec, which saves a copy.
func (ProtoCodec) MarshalAppend(dst []byte, m any) ([]byte, error) {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("proto codec: %T is not a protobuf message", m)
	}
	return proto.MarshalOptions{}.MarshalAppend(dst, pm)
}

// Unmarshal implements connect.Codec.
func (ProtoCodec) Unmarshal(data []byte, m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return fmt.Errorf("proto codec: %T is not a protobuf message", m)
	}
	return proto.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(data, pm)
}
