package clientconfig_test

import (
	"fmt"
	"log"
	"strings"

	"github.com/runnel-dev/runnel/clientconfig"
)

// The client.properties of a Java client for a SASL/SCRAM cluster over TLS.
func Example() {
	s, err := clientconfig.Parse(strings.NewReader(`
bootstrap.servers=kafka-1.example.com:9093,kafka-2.example.com:9093
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
    username="wordcount" password="secret";
`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.BootstrapServers)
	fmt.Println(s.SASL.Name(), s.TLS != nil, len(s.Opts()))
	// Output:
	// [kafka-1.example.com:9093 kafka-2.example.com:9093]
	// SCRAM-SHA-512 true 2
}
