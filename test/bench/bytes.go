package main

import (
	"context"
	"strconv"
	"strings"
)

// bodyBytes reads the API server's count of request body bytes by "verb
// resource" (apiserver_request_body_size_bytes): what every client wrote,
// the controller of this tree or of a baseline alike.
func bodyBytes(ctx context.Context) map[string]float64 {
	raw, err := kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil
	}
	return byVerbAndResource(string(raw), "apiserver_request_body_size_bytes_sum")
}

// byVerbAndResource sums a metric's series in a Prometheus scrape by "verb
// resource" (the verb lower case).
func byVerbAndResource(text, name string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		labels, value, _ := strings.Cut(strings.TrimPrefix(line, name+"{"), "} ")
		var verb, resource string
		for _, kv := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			v = strings.Trim(v, `"`)
			switch k {
			case "verb":
				verb = strings.ToLower(v)
			case "resource":
				resource = v
			}
		}
		n, _ := strconv.ParseFloat(value, 64)
		out[verb+" "+resource] += n
	}
	return out
}

// ledgerBytes is what was written to ImageCaches (their status, with the
// ledger in it before the slices) and ImageCacheSlices between two readings
// of bodyBytes.
func ledgerBytes(before, after map[string]float64) float64 {
	sum := 0.0
	for k, v := range after {
		if strings.HasSuffix(k, " imagecaches") || strings.HasSuffix(k, " imagecacheslices") {
			sum += v - before[k]
		}
	}
	return sum
}
