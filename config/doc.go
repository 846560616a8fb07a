// Package config loads the configuration of certmesh's long-running modes:
// the controller (docs/deploy.md) and the router (section 4).
//
// Both are plain structs whose yaml tags name the settings. One generic
// mechanism, driven by reflection over those tags, fills any of them from
// four layers, each overriding the one before:
//
//  1. defaults: DefaultController(), DefaultRouter();
//  2. the YAML file (gopkg.in/yaml.v3). Unknown fields, duplicate keys and
//     values of the wrong type are errors naming the file, line and field;
//  3. the environment: CERTMESH_<SECTION>_<FIELD>, e.g. CERTMESH_API_LISTEN;
//  4. command-line flags: --<section>.<field>, e.g. --api.listen.
//
// A value from the environment or a flag is text: numbers in decimal,
// durations as Go writes them (1h, 5m, 250ms), lists as comma-separated
// words or as a YAML flow sequence (["a", "b"]), and list-of-object settings
// (auth.oidc, auth.jwt) as YAML or JSON.
//
// Paths read from the file (and defaults) are resolved relative to the
// directory of the file; paths from the environment or flags relative to the
// working directory. Validate reports the first problem as an *Error naming
// the file, the field and where its value came from; command-line tools
// exit with status 2 on it.
//
// Flags (urfave/cli/v2) are generated from the same structs, one per
// setting, with its default and environment variable in the help text, so
// `--help` lists every setting.
package config
