package runtime

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/runnel-dev/runnel/internal/graph"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestProduceErrorNamesOrigin: a refused record's error names the input
// record it came from, with a long key cut to maxKeyInError bytes; the
// origin is copied, so the input's memory (its fetched batch) is not kept
// and later changes to it do not show; a record without an origin names
// only its topic. The record keeps the producer's context.
func TestProduceErrorNamesOrigin(t *testing.T) {
	type ctxKey struct{}
	ctx := context.WithValue(context.Background(), ctxKey{}, "producer")
	long := []byte(strings.Repeat("k", maxKeyInError) + "tail")
	for _, tc := range []struct {
		name   string
		origin *kgo.Record
		want   string
	}{
		{"short key", &kgo.Record{Topic: "in", Partition: 2, Offset: 7, Key: []byte("user-1")},
			`stream: producing to out the output of input record in-2@7 (key "user-1"): `},
		{"long key", &kgo.Record{Topic: "in", Partition: 0, Offset: 1, Key: long},
			`stream: producing to out the output of input record in-0@1 (key "` + strings.Repeat("k", maxKeyInError) + `"...): `},
		{"no origin", nil, `stream: producing to out: `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kr := newKafkaRecord(ctx, graph.OutRecord{Topic: "out", Partition: -1, Key: []byte("k"), Value: []byte("v"), Origin: tc.origin})
			if tc.origin != nil {
				tc.origin.Key[0] = 'X' // the fetch buffer is reused: the error must not see it
			}
			if kr.Topic != "out" || string(kr.Key) != "k" || string(kr.Value) != "v" || kr.Context.Value(ctxKey{}) != "producer" {
				t.Fatalf("record %+v lost its fields or the producer's context", kr)
			}
			err := produceError(kr, kerr.MessageTooLarge)
			if !strings.HasPrefix(err.Error(), tc.want) || !errors.Is(err, kerr.MessageTooLarge) {
				t.Errorf("produceError = %q, want it to start with %q and wrap MESSAGE_TOO_LARGE", err, tc.want)
			}
		})
	}
}
