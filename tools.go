//go:build tools

// Package tools pins the module versions that the packages under construction
// will import, so go mod tidy keeps them while the tree grows. Removed once
// every dependency is imported by real code.
package tools

import (
	_ "github.com/VictoriaMetrics/metrics"
	_ "github.com/cockroachdb/datadriven"
	_ "github.com/coreos/go-oidc/v3/oidc"
	_ "github.com/golang-jwt/jwt/v5"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/hashicorp/memberlist"
	_ "github.com/urfave/cli/v2"
	_ "github.com/vmihailenco/msgpack/v5"
	_ "go.etcd.io/bbolt"
	_ "go.uber.org/goleak"
	_ "golang.org/x/time/rate"
	_ "gopkg.in/yaml.v3"
	_ "pgregory.net/rapid"
)
