//go:build tools

// Package tools pins the module versions that the packages under construction
// will import, so go mod tidy keeps them while the tree grows. Removed once
// every dependency is imported by real code.
package tools
import (
 _ "github.com/coreos/go-oidc/v3/oidc"
 _ "github.com/golang-jwt/jwt/v5"
 _ "github.com/hashicorp/memberlist"
 _ "github.com/vmihailenco/msgpack/v5"
 _ "github.com/urfave/cli/v2"
 _ "github.com/VictoriaMetrics/metrics"
 _ "go.etcd.io/bbolt"
 _ "github.com/google/go-cmp/cmp"
 _ "gopkg.in/yaml.v3"
 _ "golang.org/x/time/rate"
 _ "go.uber.org/goleak"
 _ "pgregory.net/rapid"
 _ "github.com/cockroachdb/datadriven"
)
