// Command printinfo prints buildinfo.Read(), for the test that builds it
// the way releases are built.
package main

import (
	"fmt"

	"github.com/pentecost/pentecost/buildinfo"
)

func main() { fmt.Print(buildinfo.Read()) }
