package operator

import (
	"net"
	"net/http"
	"time"
)

// flightHTTPClient is the operator's client of the agents' flight recorders: a bounded
// connect and header size; each call's deadline comes from flight.Client.Fetch.
func flightHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                  nil, // agents are reached on their pod IPs, never through a proxy
		DialContext:            (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		TLSHandshakeTimeout:    5 * time.Second,
		ResponseHeaderTimeout:  0, // the agent waits for samples past the window's end first
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        90 * time.Second,
	}}
}
