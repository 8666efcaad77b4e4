package serde_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/runnel-dev/runnel/serde"
)

const topic = "orders"

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func TestInt32(t *testing.T) {
	tests := []struct {
		name string
		v    int32
		hex  string
	}{
		{"zero", 0, "00 00 00 00"},
		{"one", 1, "00 00 00 01"},
		{"minus one", -1, "ff ff ff ff"},
		{"minus two", -2, "ff ff ff fe"},
		{"256", 256, "00 00 01 00"},
		{"min", math.MinInt32, "80 00 00 00"},
		{"max", math.MaxInt32, "7f ff ff ff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := mustHex(t, tt.hex)
			got, err := serde.Int32.Serialize(topic, tt.v)
			if err != nil {
				t.Fatalf("Serialize: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Serialize(%d) = % x, want % x", tt.v, got, want)
			}
			back, err := serde.Int32.Deserialize(topic, got)
			if err != nil {
				t.Fatalf("Deserialize: %v", err)
			}
			if back != tt.v {
				t.Fatalf("round trip: got %d, want %d", back, tt.v)
			}
		})
	}
}

func TestInt64(t *testing.T) {
	tests := []struct {
		name string
		v    int64
		hex  string
	}{
		{"zero", 0, "00 00 00 00 00 00 00 00"},
		{"one", 1, "00 00 00 00 00 00 00 01"},
		{"minus one", -1, "ff ff ff ff ff ff ff ff"},
		{"minus two", -2, "ff ff ff ff ff ff ff fe"},
		{"2^32", 1 << 32, "00 00 00 01 00 00 00 00"},
		{"min", math.MinInt64, "80 00 00 00 00 00 00 00"},
		{"max", math.MaxInt64, "7f ff ff ff ff ff ff ff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := mustHex(t, tt.hex)
			got, err := serde.Int64.Serialize(topic, tt.v)
			if err != nil {
				t.Fatalf("Serialize: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Serialize(%d) = % x, want % x", tt.v, got, want)
			}
			back, err := serde.Int64.Deserialize(topic, got)
			if err != nil {
				t.Fatalf("Deserialize: %v", err)
			}
			if back != tt.v {
				t.Fatalf("round trip: got %d, want %d", back, tt.v)
			}
		})
	}
}

func TestFloat64(t *testing.T) {
	tests := []struct {
		name     string
		v        float64
		hex      string
		wantBits uint64 // bits after a round trip
	}{
		{"zero", 0, "00 00 00 00 00 00 00 00", 0},
		{"negative zero", math.Copysign(0, -1), "80 00 00 00 00 00 00 00", 0x8000000000000000},
		{"one and a half", 1.5, "3f f8 00 00 00 00 00 00", 0x3ff8000000000000},
		{"minus one", -1, "bf f0 00 00 00 00 00 00", 0xbff0000000000000},
		{"max", math.MaxFloat64, "7f ef ff ff ff ff ff ff", 0x7fefffffffffffff},
		{"smallest subnormal", math.SmallestNonzeroFloat64, "00 00 00 00 00 00 00 01", 1},
		{"+inf", math.Inf(1), "7f f0 00 00 00 00 00 00", 0x7ff0000000000000},
		{"-inf", math.Inf(-1), "ff f0 00 00 00 00 00 00", 0xfff0000000000000},
		// Java's doubleToLongBits writes every NaN as the canonical NaN.
		{"canonical NaN", math.Float64frombits(0x7ff8000000000000), "7f f8 00 00 00 00 00 00", 0x7ff8000000000000},
		{"go NaN", math.NaN(), "7f f8 00 00 00 00 00 00", 0x7ff8000000000000},
		{"negative NaN payload", math.Float64frombits(0xfff0000000000123), "7f f8 00 00 00 00 00 00", 0x7ff8000000000000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := mustHex(t, tt.hex)
			got, err := serde.Float64.Serialize(topic, tt.v)
			if err != nil {
				t.Fatalf("Serialize: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Serialize(%v) = % x, want % x", tt.v, got, want)
			}
			back, err := serde.Float64.Deserialize(topic, got)
			if err != nil {
				t.Fatalf("Deserialize: %v", err)
			}
			if bits := math.Float64bits(back); bits != tt.wantBits {
				t.Fatalf("round trip bits: got %#016x, want %#016x", bits, tt.wantBits)
			}
		})
	}
}

func TestFloat64DeserializeKeepsNaNPayload(t *testing.T) {
	in := mustHex(t, "7f f0 00 00 00 00 00 01")
	got, err := serde.Float64.Deserialize(topic, in)
	if err != nil {
		t.Fatalf("Deserialize: %v", err)
	}
	if bits := math.Float64bits(got); bits != 0x7ff0000000000001 {
		t.Fatalf("bits = %#016x, want 0x7ff0000000000001", bits)
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		name string
		v    string
		hex  string
	}{
		{"empty", "", ""},
		{"ascii", "hello", "68 65 6c 6c 6f"},
		{"two-byte", "é", "c3 a9"},
		{"cjk", "日本", "e6 97 a5 e6 9c ac"},
		{"emoji", "🦀", "f0 9f a6 80"},
		{"nul inside", "a\x00b", "61 00 62"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := mustHex(t, tt.hex)
			got, err := serde.String.Serialize(topic, tt.v)
			if err != nil {
				t.Fatalf("Serialize: %v", err)
			}
			if got == nil {
				t.Fatalf("Serialize(%q) = nil, want non-nil", tt.v)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Serialize(%q) = % x, want % x", tt.v, got, want)
			}
			back, err := serde.String.Deserialize(topic, got)
			if err != nil {
				t.Fatalf("Deserialize: %v", err)
			}
			if back != tt.v {
				t.Fatalf("round trip: got %q, want %q", back, tt.v)
			}
		})
	}
}

func TestStringDeserializeCopies(t *testing.T) {
	buf := []byte("abc")
	s, err := serde.String.Deserialize(topic, buf)
	if err != nil {
		t.Fatal(err)
	}
	buf[0] = 'x'
	if s != "abc" {
		t.Fatalf("string changed with its input buffer: %q", s)
	}
}

func TestBytes(t *testing.T) {
	tests := []struct {
		name string
		v    []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"one", []byte{0}},
		{"binary", []byte{0xff, 0x00, 0x7f, 0x80}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := serde.Bytes.Serialize(topic, tt.v)
			if err != nil {
				t.Fatalf("Serialize: %v", err)
			}
			if (got == nil) != (tt.v == nil) || !bytes.Equal(got, tt.v) {
				t.Fatalf("Serialize(%#v) = %#v", tt.v, got)
			}
			back, err := serde.Bytes.Deserialize(topic, got)
			if err != nil {
				t.Fatalf("Deserialize: %v", err)
			}
			if (back == nil) != (tt.v == nil) || !bytes.Equal(back, tt.v) {
				t.Fatalf("round trip: got %#v, want %#v", back, tt.v)
			}
			// Neither direction copies.
			if len(tt.v) > 0 && (&got[0] != &tt.v[0] || &back[0] != &tt.v[0]) {
				t.Fatal("Bytes copied its input")
			}
		})
	}
}

func TestWrongSize(t *testing.T) {
	tests := []struct {
		name string
		de   func(topic string, data []byte) error
		data []byte
		want string
	}{
		{"Int32 empty", deErr(serde.Int32), []byte{}, `serde: Int32 on topic "orders": got 0 bytes, want 4: serde: wrong data size`},
		{"Int32 short", deErr(serde.Int32), []byte{1, 2, 3}, `serde: Int32 on topic "orders": got 3 bytes, want 4: serde: wrong data size`},
		{"Int32 long", deErr(serde.Int32), make([]byte, 8), `serde: Int32 on topic "orders": got 8 bytes, want 4: serde: wrong data size`},
		{"Int64 empty", deErr(serde.Int64), []byte{}, `serde: Int64 on topic "orders": got 0 bytes, want 8: serde: wrong data size`},
		{"Int64 short", deErr(serde.Int64), []byte{1, 2, 3}, `serde: Int64 on topic "orders": got 3 bytes, want 8: serde: wrong data size`},
		{"Int64 long", deErr(serde.Int64), make([]byte, 9), `serde: Int64 on topic "orders": got 9 bytes, want 8: serde: wrong data size`},
		{"Float64 short", deErr(serde.Float64), make([]byte, 4), `serde: Float64 on topic "orders": got 4 bytes, want 8: serde: wrong data size`},
		{"Float64 long", deErr(serde.Float64), make([]byte, 16), `serde: Float64 on topic "orders": got 16 bytes, want 8: serde: wrong data size`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.de(topic, tt.data)
			if !errors.Is(err, serde.ErrSize) {
				t.Fatalf("err = %v, want one wrapping ErrSize", err)
			}
			if !strings.Contains(err.Error(), `"orders"`) {
				t.Fatalf("error %q does not name the topic", err)
			}
			if err.Error() != tt.want {
				t.Fatalf("error = %q, want %q", err, tt.want)
			}
		})
	}
}

// deErr adapts a Serde's Deserialize to return only its error.
func deErr[T any](s serde.Serde[T]) func(string, []byte) error {
	return func(topic string, data []byte) error {
		_, err := s.Deserialize(topic, data)
		return err
	}
}

type order struct {
	ID    int64    `json:"id"`
	Item  string   `json:"item"`
	Price float64  `json:"price"`
	Tags  []string `json:"tags,omitempty"`
}

func TestNil(t *testing.T) {
	check := func(t *testing.T, got, want any, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("Deserialize(nil): %v", err)
		}
		if got != want {
			t.Fatalf("Deserialize(nil) = %#v, want %#v", got, want)
		}
	}
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"String", func(t *testing.T) {
			v, err := serde.String.Deserialize(topic, nil)
			check(t, v, "", err)
		}},
		{"Bytes", func(t *testing.T) {
			v, err := serde.Bytes.Deserialize(topic, nil)
			if err != nil || v != nil {
				t.Fatalf("Deserialize(nil) = %#v, %v; want nil, nil", v, err)
			}
		}},
		{"Int32", func(t *testing.T) {
			v, err := serde.Int32.Deserialize(topic, nil)
			check(t, v, int32(0), err)
		}},
		{"Int64", func(t *testing.T) {
			v, err := serde.Int64.Deserialize(topic, nil)
			check(t, v, int64(0), err)
		}},
		{"Float64", func(t *testing.T) {
			v, err := serde.Float64.Deserialize(topic, nil)
			check(t, math.Float64bits(v), uint64(0), err)
		}},
		{"JSON struct", func(t *testing.T) {
			v, err := serde.JSON[order]().Deserialize(topic, nil)
			if err != nil {
				t.Fatal(err)
			}
			if v.ID != 0 || v.Item != "" || v.Price != 0 || v.Tags != nil {
				t.Fatalf("Deserialize(nil) = %#v, want zero", v)
			}
		}},
		{"JSON pointer", func(t *testing.T) {
			v, err := serde.JSON[*order]().Deserialize(topic, nil)
			if err != nil || v != nil {
				t.Fatalf("Deserialize(nil) = %#v, %v; want nil, nil", v, err)
			}
		}},
		{"Func passes nil through", func(t *testing.T) {
			var sawNil bool
			s := serde.Func(
				func(string, int) ([]byte, error) { return nil, nil },
				func(_ string, b []byte) (int, error) { sawNil = b == nil; return 7, nil },
			)
			v, err := s.Deserialize(topic, nil)
			check(t, v, 7, err)
			if !sawNil {
				t.Fatal("Func did not pass nil data to de")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	s := serde.JSON[order]()
	tests := []struct {
		name string
		v    order
	}{
		{"zero", order{}},
		{"full", order{ID: 42, Item: "日本茶", Price: 3.25, Tags: []string{"tea", "green"}}},
		{"extremes", order{ID: math.MinInt64, Item: "\x00\"\\", Price: math.MaxFloat64}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := s.Serialize(topic, tt.v)
			if err != nil {
				t.Fatalf("Serialize: %v", err)
			}
			got, err := s.Deserialize(topic, b)
			if err != nil {
				t.Fatalf("Deserialize(%s): %v", b, err)
			}
			if got.ID != tt.v.ID || got.Item != tt.v.Item || got.Price != tt.v.Price ||
				strings.Join(got.Tags, ",") != strings.Join(tt.v.Tags, ",") {
				t.Fatalf("round trip: got %#v, want %#v", got, tt.v)
			}
		})
	}
}

func TestJSONEncoding(t *testing.T) {
	b, err := serde.JSON[order]().Serialize(topic, order{ID: 1, Item: "tea", Price: 1.5})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":1,"item":"tea","price":1.5}`; string(b) != want {
		t.Fatalf("Serialize = %s, want %s", b, want)
	}
}

func TestJSONErrors(t *testing.T) {
	s := serde.JSON[order]()
	tests := []struct {
		name string
		data []byte
		as   func(error) bool
	}{
		{"syntax", []byte(`{"id":`), func(err error) bool {
			return strings.Contains(err.Error(), "unexpected end of JSON input")
		}},
		{"empty non-nil", []byte{}, func(err error) bool {
			return strings.Contains(err.Error(), "unexpected end of JSON input")
		}},
		{"invalid", []byte(`{id}`), func(err error) bool {
			var se *json.SyntaxError
			return errors.As(err, &se)
		}},
		{"type", []byte(`{"id":"x"}`), func(err error) bool {
			var te *json.UnmarshalTypeError
			return errors.As(err, &te)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Deserialize(topic, tt.data)
			if err == nil {
				t.Fatal("Deserialize succeeded, want error")
			}
			if !strings.HasPrefix(err.Error(), `serde: JSON on topic "orders": `) {
				t.Fatalf("error %q does not name the topic", err)
			}
			if !tt.as(err) {
				t.Fatalf("error %q does not wrap the expected json error", err)
			}
		})
	}

	_, err := serde.JSON[func()]().Serialize(topic, func() {})
	var ute *json.UnsupportedTypeError
	if !errors.As(err, &ute) || !strings.Contains(err.Error(), `"orders"`) {
		t.Fatalf("Serialize(func) error = %v, want wrapped *json.UnsupportedTypeError naming the topic", err)
	}
}

func TestFunc(t *testing.T) {
	errBad := errors.New("bad")
	s := serde.Func(
		func(topic string, v bool) ([]byte, error) {
			if v {
				return []byte(topic + ":t"), nil
			}
			return nil, errBad
		},
		func(topic string, b []byte) (bool, error) {
			return string(b) == topic+":t", nil
		},
	)
	b, err := s.Serialize(topic, true)
	if err != nil || string(b) != "orders:t" {
		t.Fatalf("Serialize(true) = %q, %v", b, err)
	}
	v, err := s.Deserialize(topic, b)
	if err != nil || !v {
		t.Fatalf("Deserialize = %v, %v", v, err)
	}
	if _, err := s.Serialize(topic, false); !errors.Is(err, errBad) {
		t.Fatalf("Serialize(false) err = %v, want errBad", err)
	}
}

func TestAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("alloc counts")
	}
	i64 := mustHex(t, "00 00 00 00 00 00 00 01")
	i32 := mustHex(t, "ff ff ff fe")
	str := []byte("hello, world")
	tests := []struct {
		name string
		max  float64
		fn   func()
	}{
		{"Int64.Serialize", 1, func() { _, _ = serde.Int64.Serialize(topic, 1) }},
		{"Int64.Deserialize", 0, func() { _, _ = serde.Int64.Deserialize(topic, i64) }},
		{"Int32.Deserialize", 0, func() { _, _ = serde.Int32.Deserialize(topic, i32) }},
		{"Float64.Deserialize", 0, func() { _, _ = serde.Float64.Deserialize(topic, i64) }},
		{"String.Deserialize", 1, func() { _, _ = serde.String.Deserialize(topic, str) }},
		{"String.Serialize empty", 0, func() { _, _ = serde.String.Serialize(topic, "") }},
		{"Bytes.Serialize", 0, func() { _, _ = serde.Bytes.Serialize(topic, str) }},
		{"Bytes.Deserialize", 0, func() { _, _ = serde.Bytes.Deserialize(topic, str) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := testing.AllocsPerRun(100, tt.fn); got > tt.max {
				t.Fatalf("allocs = %v, want <= %v", got, tt.max)
			}
		})
	}
}
