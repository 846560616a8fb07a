// Command echo is the upstream service of the compose cluster in docker/: a
// plain TCP server that sends back every byte it receives, so that a client
// admitted through a router can see its bytes go through. It is built
// static (CGO_ENABLED=0) into its own FROM scratch image
// (docker/Dockerfile.echo).
//
//	echo --listen 0.0.0.0:7000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

func main() {
	listen := flag.String("listen", "0.0.0.0:7000", "`host:port` to listen on")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "echo: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "echo: --listen: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "echo: listening on %s\n", l.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	var wg sync.WaitGroup
	for {
		c, err := l.Accept()
		if err != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			io.Copy(c, c) // ends when the client (the router) closes
		}()
	}
	wg.Wait()
}
