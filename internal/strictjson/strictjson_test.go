package strictjson

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestDecode(t *testing.T) {
	type body struct {
		Identity string `json:"identity"`
	}
	for _, tc := range []struct {
		in   string
		want error // nil: decoded
	}{
		{`{"identity":"alice"}`, nil},
		{"  {\"identity\":\"alice\"}\r\n\t \n", nil},
		{`{"identity":"alice","unknown":1}`, nil}, // unknown fields: ignored, as before
		{`{"identity":"alice"} junk`, ErrTrailingData},
		{`{"identity":"alice"}{"identity":"bob"}`, ErrTrailingData},
		{`{"identity":"alice"}}`, ErrTrailingData},
		{`{"identity":"alice"}]`, ErrTrailingData},
		{`{"identity":"alice"}` + strings.Repeat(" ", 4096) + "x", ErrTrailingData},
		{`{"identity":"alice"} 0`, ErrTrailingData},
		{"{\"identity\":\"alice\"}\x00", ErrTrailingData},
		{``, io.EOF},
	} {
		var b body
		err := Decode(strings.NewReader(tc.in), &b)
		if tc.want == nil {
			if err != nil || b.Identity != "alice" {
				t.Errorf("%.40q: %v, %+v", tc.in, err, b)
			}
			continue
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%.40q: %v, want %v", tc.in, err, tc.want)
		}
	}
	// A reader's own error after the value is returned as is.
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader(`{"identity":"alice"}  `), iotest.ErrReader(boom))
	if err := Decode(r, new(body)); !errors.Is(err, boom) {
		t.Errorf("reader error after the value: %v", err)
	}
	// Malformed JSON is the decoder's error, not ErrTrailingData.
	if err := Decode(strings.NewReader(`{"identity":`), new(body)); err == nil || errors.Is(err, ErrTrailingData) {
		t.Errorf("truncated value: %v", err)
	}
}
