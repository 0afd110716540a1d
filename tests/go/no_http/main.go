// Command no_http is a Go program without any net/http server: the tracer must refuse
// it with an error naming net/http. It prints "ready" and sleeps for a minute.
package main

import (
	"fmt"
	"time"
)

func main() {
	fmt.Println("ready")
	time.Sleep(60 * time.Second)
}
