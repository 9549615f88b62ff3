// terraform-provider-nodenet serves the nodenet Terraform provider.
package main

import (
	"context"
	"flag"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/nodenet/terraform-provider-nodenet/provider"
)

// version is set by goreleaser.
var version = "dev"

//go:generate ./hack/gen-proto.sh

func main() {
	var debug bool
	flag.BoolVar(&debug, "debug", false, "run the provider with support for debuggers like delve")
	flag.Parse()

	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address: "registry.terraform.io/nodenet/nodenet",
		Debug:   debug,
	})
	if err != nil {
		log.Fatal(err.Error())
	}
}
