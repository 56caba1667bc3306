// Command gen writes ../spec_gen.go from the AMQP 1.0 specification's XML (Debian
// package amqp-specs, /usr/share/amqp/specs/1-0); the generator itself is
// ../internal/specgen.
//
// Usage (from internal/wire): go run ./gen [-spec DIR] [-out FILE]
package main

import (
	"flag"
	"log"
	"os"

	"github.com/amqp1kit/amqp1kit/internal/wire/internal/specgen"
)

func main() {
	spec := flag.String("spec", specgen.DefaultSpecDir, "directory of the AMQP 1.0 XML (Debian amqp-specs)")
	out := flag.String("out", "spec_gen.go", "output file")
	flag.Parse()
	src, err := specgen.Generate(*spec)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		log.Fatal(err)
	}
}
