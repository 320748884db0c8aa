#!/bin/sh
# The Edgeport container of the docker-compose lab: install the dependencies, wait for the
# kubeconfig k3s writes, point it at the server's lab address, and run the appliance.
set -eu
cd /repo
command -v ip >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq --no-install-recommends iproute2 >/dev/null; }
npm ci --no-audit --no-fund --loglevel=error
echo "edgeport-start: waiting for /k3s/kubeconfig.yaml (written by the k3s server)"
until [ -s /k3s/kubeconfig.yaml ]; do sleep 1; done
mkdir -p /run/edgeport /var/lib/edgeport
sed 's#https://127.0.0.1:6443#https://172.28.0.10:6443#' /k3s/kubeconfig.yaml > /run/edgeport/kubeconfig.yaml
exec lb/cli/edgeport run --config /lab/edgeport.yaml
