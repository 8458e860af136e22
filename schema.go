package main

import (
	_ "embed"
	"io"
)

// configSchema is the JSON Schema (draft 2020-12) of the config file,
// generated from the config structs and their doc comments by
// TestSchemaUpToDate (go test -run TestSchemaUpToDate -update .), which
// also fails while it is stale.
//
//go:embed docs/config.schema.json
var configSchema []byte

// schema is `manifold schema`: the embedded schema on stdout.
func schema(stdout io.Writer) int {
	if _, err := stdout.Write(configSchema); err != nil {
		return 1
	}
	return 0
}
