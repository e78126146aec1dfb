#!/usr/bin/env bash
# Prints N kwok Node manifests (kwok-node-0 ... kwok-node-N-1); the first
# BACKEND of them are labelled tier=backend. START offsets the numbering.
#   hack/local-nodes.sh N [BACKEND] [START] | kubectl apply -f -
set -euo pipefail
n="${1:?usage: local-nodes.sh N [BACKEND] [START]}"
backend="${2:-0}"
start="${3:-0}"
for ((i = start; i < start + n; i++)); do
  name="kwok-node-${i}"
  tier=""
  ((i - start < backend)) && tier="    tier: backend"
  cat <<YAML
---
apiVersion: v1
kind: Node
metadata:
  name: ${name}
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: ${name}
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
${tier}
YAML
done
