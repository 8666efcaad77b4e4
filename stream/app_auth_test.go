package stream_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/runnel-dev/runnel/internal/kafkatest"
	"github.com/runnel-dev/runnel/serde"
	"github.com/runnel-dev/runnel/stream"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

// authApp returns Run's error for a pipe in -> out on c as SASL/PLAIN
// user with password pass.
func authApp(t *testing.T, c *kafkatest.Cluster, appID, user, pass string) error {
	t.Helper()
	b := stream.NewBuilder()
	stream.From(b, "in", serde.String, serde.String).To("out", serde.String, serde.String)
	app, err := stream.NewApp(b, stream.Config{
		AppID:      appID,
		Brokers:    c.Brokers(),
		StateDir:   t.TempDir(),
		ClientOpts: append(e2eGroupOpts(), kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism())),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	err = app.Run(ctx)
	if ctx.Err() != nil {
		t.Fatalf("Run did not fail before its context ended (err %v)", err)
	}
	return err
}

// TestAppAuthenticationFails: a wrong SASL password fails Run (instead of
// retrying forever as an unreachable cluster) with an error saying that
// authentication failed, for which mechanism and user.
func TestAppAuthenticationFails(t *testing.T) {
	c := kafkatest.StartT(t, kfake.EnableSASL(), kfake.Superuser("PLAIN", "admin", "secret"), kfake.SeedTopics(1, "in", "out"))
	err := authApp(t, c, "auth-fails", "admin", "wrong")
	if !errors.Is(err, stream.ErrAuthentication) {
		t.Errorf("Run = %v, want an error matching stream.ErrAuthentication", err)
	}
	for _, want := range []string{"stream: authentication failed", "PLAIN", `"admin"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Run = %v, want an error containing %q", err, want)
		}
	}
}

// TestAppAuthorizationFails: a user without permission on the input topic
// fails Run with an error saying so and naming the topic.
func TestAppAuthorizationFails(t *testing.T) {
	allow := func(res kmsg.ACLResourceType, name string) kfake.ACL {
		return kfake.ACL{Resource: res, Name: name, Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationAll, Allow: true}
	}
	c := kafkatest.StartT(t, kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser("PLAIN", "admin", "secret"),
		kfake.User("PLAIN", "writer", "pw", allow(kmsg.ACLResourceTypeTopic, "out"), allow(kmsg.ACLResourceTypeGroup, "authz-fails"),
			allow(kmsg.ACLResourceTypeCluster, "kafka-cluster")),
		kfake.SeedTopics(1, "in", "out"))
	err := authApp(t, c, "authz-fails", "writer", "pw")
	if !errors.Is(err, stream.ErrAuthorization) {
		t.Errorf("Run = %v, want an error matching stream.ErrAuthorization", err)
	}
	for _, want := range []string{"stream: not authorized", `"in"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Run = %v, want an error containing %q", err, want)
		}
	}
}
