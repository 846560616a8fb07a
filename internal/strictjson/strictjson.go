// Package strictjson decodes JSON input that must be exactly one value: a
// request body, a file. encoding/json's Decoder stops after the first
// value and leaves the rest unread, so `{"identity":"alice"} junk` or two
// concatenated objects would pass for one; Decode refuses them.
// (json.Unmarshal already refuses trailing data: use it for byte slices.)
//
// Unknown fields are ignored, as encoding/json does by default.
package strictjson

import (
	"encoding/json"
	"errors"
	"io"
)

// ErrTrailingData is returned when something other than whitespace follows
// the JSON value.
var ErrTrailingData = errors.New("strictjson: data after the JSON value")

// Decode reads one JSON value from r into v, then reads r to its end and
// fails with ErrTrailingData at the first byte that is not JSON whitespace.
// Errors of r (such as *http.MaxBytesError) and of the decoder (io.EOF for
// empty input) are returned as they are, so callers can tell them apart.
func Decode(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	if err := dec.Decode(v); err != nil {
		return err
	}
	return onlySpace(io.MultiReader(dec.Buffered(), r))
}

// onlySpace reads r to its end; it fails at the first byte that is not
// JSON whitespace (RFC 8259 section 2).
func onlySpace(r io.Reader) error {
	var buf [512]byte
	for {
		n, err := r.Read(buf[:])
		for _, c := range buf[:n] {
			switch c {
			case ' ', '\t', '\n', '\r':
			default:
				return ErrTrailingData
			}
		}
		switch {
		case err == io.EOF:
			return nil
		case err != nil:
			return err
		}
	}
}
