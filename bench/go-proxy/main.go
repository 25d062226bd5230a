// The bench's Go contender: net/http/httputil.ReverseProxy doing the work of
// Portico's users-api route (bench/portico.ts) and of the nginx peer: only
// paths under /users/ (404 otherwise), prefix /users stripped, request header
// X-Gateway: portico set, X-Debug removed, X-Forwarded-For appended (the
// ReverseProxy default), response header X-Served-By: portico added. HTTP/1.1
// keep-alive pool of 64 idle connections to the upstream, as nginx's
// `keepalive 64`. Standard library only (built with GO111MODULE=off).
//
//	go-proxy -listen 127.0.0.1:PORT -upstream 127.0.0.1:UPSTREAM_PORT
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	upstream := flag.String("upstream", "127.0.0.1:8081", "upstream host:port")
	flag.Parse()

	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: *upstream})
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns = 64
	transport.MaxIdleConnsPerHost = 64
	proxy.Transport = transport
	direct := proxy.Director
	proxy.Director = func(r *http.Request) {
		// r is ReverseProxy's outbound copy: the inbound request stays as received.
		direct(r)
		r.URL.Path = strings.TrimPrefix(r.URL.Path, "/users")
		r.URL.RawPath = ""
		r.Header.Set("X-Gateway", "portico")
		r.Header.Del("X-Debug")
	}
	proxy.ModifyResponse = func(res *http.Response) error {
		res.Header.Set("X-Served-By", "portico")
		return nil
	}

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/users/") {
			http.NotFound(w, r)
			return
		}
		proxy.ServeHTTP(w, r)
	})
	log.Fatal(http.ListenAndServe(*listen, handler))
}
