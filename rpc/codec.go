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
