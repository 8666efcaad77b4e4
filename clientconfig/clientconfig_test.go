package clientconfig

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
)

// writePEMs writes a self-signed certificate and its key to dir and returns
// their paths.
func writePEMs(t *testing.T, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "clientconfig test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// plainCredentials returns the user and password a PLAIN mechanism sends.
func plainCredentials(t *testing.T, m sasl.Mechanism) (user, pass string) {
	t.Helper()
	_, msg, err := m.Authenticate(context.Background(), "broker:9092")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(string(msg), "\x00") // authzid \0 user \0 pass
	if len(parts) != 3 {
		t.Fatalf("PLAIN message %q has %d parts, want 3", msg, len(parts))
	}
	return parts[1], parts[2]
}

func TestParse(t *testing.T) {
	dir := t.TempDir()
	cert, key := writePEMs(t, dir)

	tests := []struct {
		name  string
		props string
		check func(t *testing.T, s Settings)
	}{{
		name:  "empty",
		props: "# nothing but comments\n! and bangs\n\n",
		check: func(t *testing.T, s Settings) {
			if s.BootstrapServers != nil || s.ClientID != "" || s.TLS != nil || s.SASL != nil {
				t.Errorf("got %+v, want the zero Settings", s)
			}
		},
	}, {
		name:  "bootstrap and client id, Java separators and continuation",
		props: "bootstrap.servers = b1:9092, \\\n    b2:9092\nclient.id: my-app\n",
		check: func(t *testing.T, s Settings) {
			if want := []string{"b1:9092", "b2:9092"}; !slices.Equal(s.BootstrapServers, want) {
				t.Errorf("BootstrapServers = %q, want %q", s.BootstrapServers, want)
			}
			if s.ClientID != "my-app" {
				t.Errorf("ClientID = %q, want my-app", s.ClientID)
			}
			if s.TLS != nil || s.SASL != nil {
				t.Errorf("PLAINTEXT got TLS %v, SASL %v", s.TLS, s.SASL)
			}
		},
	}, {
		name:  "SASL_PLAINTEXT PLAIN with username and password",
		props: "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.username=alice\nsasl.password=s3cr=t\n",
		check: func(t *testing.T, s Settings) {
			if s.TLS != nil {
				t.Error("SASL_PLAINTEXT got a TLS config")
			}
			if s.SASL == nil || s.SASL.Name() != "PLAIN" {
				t.Fatalf("SASL = %v, want PLAIN", s.SASL)
			}
			if u, p := plainCredentials(t, s.SASL); u != "alice" || p != "s3cr=t" {
				t.Errorf("credentials %q/%q, want alice/s3cr=t", u, p)
			}
		},
	}, {
		name: "sasl.jaas.config PLAIN, lower-case protocol",
		props: "security.protocol=sasl_plaintext\nsasl.mechanism=PLAIN\n" +
			`sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="bob" password="pw";` + "\n",
		check: func(t *testing.T, s Settings) {
			if u, p := plainCredentials(t, s.SASL); u != "bob" || p != "pw" {
				t.Errorf("credentials %q/%q, want bob/pw", u, p)
			}
		},
	}, {
		name: "SASL_SSL SCRAM-SHA-512 with a CA",
		props: "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n" +
			`sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="u" password="p";` +
			"\nssl.ca.location=" + cert + "\n",
		check: func(t *testing.T, s Settings) {
			if s.SASL == nil || s.SASL.Name() != "SCRAM-SHA-512" {
				t.Errorf("SASL = %v, want SCRAM-SHA-512", s.SASL)
			}
			if s.TLS == nil || s.TLS.RootCAs == nil {
				t.Fatalf("TLS = %+v, want one with the CA as root", s.TLS)
			}
			if s.TLS.InsecureSkipVerify {
				t.Error("host names are not checked by default")
			}
		},
	}, {
		name:  "SSL with client certificate, no host name check",
		props: "security.protocol=SSL\nssl.certificate.location=" + cert + "\nssl.key.location=" + key + "\nssl.endpoint.identification.algorithm=\n",
		check: func(t *testing.T, s Settings) {
			if s.SASL != nil {
				t.Error("SSL got a SASL mechanism")
			}
			if s.TLS == nil || len(s.TLS.Certificates) != 1 {
				t.Fatalf("TLS = %+v, want one client certificate", s.TLS)
			}
			if !s.TLS.InsecureSkipVerify || s.TLS.VerifyConnection == nil {
				t.Error("empty ssl.endpoint.identification.algorithm: want the chain verified without the host name")
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse(strings.NewReader(tt.props))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
}

func TestParseErrors(t *testing.T) {
	dir := t.TempDir()
	cert, _ := writePEMs(t, dir)
	const saslPlain = "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"

	tests := []struct {
		name  string
		props string
		want  []string
	}{
		{"unknown key", "bootstrap.servers=b:9092\nretries=3\n", []string{`line 2`, `unknown key "retries"`, "supported: bootstrap.servers"}},
		{"Java keystore", "security.protocol=SSL\nssl.truststore.location=/x.jks\n", []string{`"ssl.truststore.location" is not supported`, "ssl.ca.location"}},
		{"encrypted key", "security.protocol=SSL\nssl.key.password=x\n", []string{`"ssl.key.password"`, "decrypt"}},
		{"bad protocol", "security.protocol=TLS\n", []string{"security.protocol", `"TLS" is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL`}},
		{"empty bootstrap", "bootstrap.servers= , \n", []string{"bootstrap.servers: empty"}},
		{"ssl key without SSL", "ssl.ca.location=" + cert + "\n", []string{"ssl.ca.location: set, but security.protocol PLAINTEXT (the default) does not use SSL"}},
		{"sasl key without SASL", "security.protocol=SSL\nsasl.mechanism=PLAIN\n", []string{"sasl.mechanism: set, but security.protocol SSL does not use SASL"}},
		{"no mechanism", "security.protocol=SASL_SSL\n", []string{"SASL needs sasl.mechanism", "GSSAPI is not supported"}},
		{"GSSAPI", "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=GSSAPI\n", []string{`sasl.mechanism: "GSSAPI" is not supported`}},
		{"no password", saslPlain + "sasl.username=u\n", []string{"needs sasl.username and sasl.password"}},
		{"jaas and username", saslPlain + "sasl.username=u\nsasl.jaas.config=x\n", []string{"sasl.jaas.config: set together with sasl.username"}},
		{"jaas module mismatch", saslPlain + `sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="u" password="p";`,
			[]string{"line 3", `login module "org.apache.kafka.common.security.scram.ScramLoginModule" does not match sasl.mechanism PLAIN`}},
		{"jaas without password", saslPlain + `sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="u";`,
			[]string{`needs username="..." and password="..."`}},
		{"missing CA file", "security.protocol=SSL\nssl.ca.location=" + filepath.Join(dir, "nope.pem") + "\n", []string{"ssl.ca.location", "nope.pem", "no such file"}},
		{"CA file without PEM", "security.protocol=SSL\nssl.ca.location=" + filepath.Join(dir, "key.pem") + "\n", []string{"ssl.ca.location: no PEM certificate"}},
		{"certificate without key", "security.protocol=SSL\nssl.certificate.location=" + cert + "\n", []string{"ssl.certificate.location: set without ssl.key.location"}},
		{"bad endpoint identification", "security.protocol=SSL\nssl.endpoint.identification.algorithm=dns\n", []string{`"dns" is not https or empty`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.props))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want an error wrapping ErrInvalid", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "client.properties")
	if err := os.WriteFile(path, []byte("# test\nclient.id=x\nsasl.mechanism=PLAIN\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if want := path + ":3: sasl.mechanism: set, but security.protocol"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Load: got %v, want an error containing %q", err, want)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load(missing): got %v, want os.ErrNotExist", err)
	}
}

func TestOpts(t *testing.T) {
	s, err := Parse(strings.NewReader("client.id=opts-test\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-256\nsasl.username=u\nsasl.password=p\n"))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(s.Opts(), kgo.SeedBrokers("127.0.0.1:1"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if got := cl.OptValue(kgo.ClientID); got != "opts-test" {
		t.Errorf("ClientID = %v, want opts-test", got)
	}
	if got, _ := cl.OptValue(kgo.SASL).([]sasl.Mechanism); len(got) != 1 || got[0].Name() != "SCRAM-SHA-256" {
		t.Errorf("SASL = %v, want one SCRAM-SHA-256 mechanism", got)
	}
	if cl.OptValue(kgo.Dialer) == nil {
		t.Error("SASL_SSL: want a TLS dialer")
	}
}

func TestSASLMechanism(t *testing.T) {
	for _, name := range []string{"PLAIN", "scram-sha-256", "SCRAM-SHA-512"} {
		m, err := SASLMechanism(name, "u", "p")
		if err != nil || !strings.EqualFold(m.Name(), name) {
			t.Errorf("SASLMechanism(%s) = %v, %v", name, m, err)
		}
	}
	if _, err := SASLMechanism("OAUTHBEARER", "u", "p"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `"OAUTHBEARER" is not supported`) {
		t.Errorf("SASLMechanism(OAUTHBEARER): got %v", err)
	}
}
