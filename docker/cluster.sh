#!/bin/sh
# Runs docker/compose.yml's three-region certmesh cluster: 3 controllers,
# 3 routers and an echo upstream, each container with its own address on a
# private bridge network. Nothing is pulled: the images are FROM scratch
# around static binaries built here.
#
#   docker/cluster.sh up             build, write the PKI (once), start, wait until every node answers
#   docker/cluster.sh env            print the endpoints and commands to try
#   docker/cluster.sh token SUBJECT  print a development token for SUBJECT (docker/devtoken)
#   docker/cluster.sh down           remove the containers and the network (the state stays)
#
# Environment: CERTMESH_STATE (default docker/state: pki/, auth/, data/,
# bin/), CERTMESH_NET (default 172.28.0, the network's first three octets),
# CERTMESH_PROJECT (compose project, default certmesh), CERTMESH_IMAGE and
# CERTMESH_ECHO_IMAGE (default certmesh:dev and certmesh-echo:dev). Remove
# $CERTMESH_STATE to start over with a new PKI and empty nodes.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
self="$here/$(basename "$0")" # what env prints works from any directory
export CERTMESH_STATE="${CERTMESH_STATE:-$here/state}"
case "$CERTMESH_STATE" in
/*) ;;
*) CERTMESH_STATE="$PWD/$CERTMESH_STATE" ;;
esac
export CERTMESH_NET="${CERTMESH_NET:-172.28.0}"
export CERTMESH_IMAGE="${CERTMESH_IMAGE:-certmesh:dev}"
export CERTMESH_ECHO_IMAGE="${CERTMESH_ECHO_IMAGE:-certmesh-echo:dev}"
export CERTMESH_UID="${CERTMESH_UID:-$(id -u)}"
export CERTMESH_GID="${CERTMESH_GID:-$(id -g)}"
project="${CERTMESH_PROJECT:-certmesh}"
bin="$CERTMESH_STATE/bin"
certmesh="$bin/certmesh/certmesh"
controllers="ctrl-us-east ctrl-eu-west ctrl-ap-southeast"
routers="edge-us-east-1 edge-eu-west-1 edge-ap-southeast-1"

compose() {
	if docker compose version >/dev/null 2>&1; then
		docker compose -p "$project" -f "$here/compose.yml" "$@"
	else
		docker-compose -p "$project" -f "$here/compose.yml" "$@"
	fi
}

# build: the static binaries, then each image from a context holding only
# its binary and its Dockerfile.
build() {
	mkdir -p "$bin/certmesh" "$bin/echo"
	(
		cd "$root"
		CGO_ENABLED=0 go build -trimpath -o "$bin/certmesh/certmesh" ./cmd/certmesh
		CGO_ENABLED=0 go build -trimpath -o "$bin/echo/echo" ./docker/echo
		CGO_ENABLED=0 go build -trimpath -o "$bin/devtoken" ./docker/devtoken
	)
	cp "$here/Dockerfile" "$bin/certmesh/Dockerfile"
	cp "$here/Dockerfile.echo" "$bin/echo/Dockerfile"
	docker build -q -t "$CERTMESH_IMAGE" "$bin/certmesh" >/dev/null
	docker build -q -t "$CERTMESH_ECHO_IMAGE" "$bin/echo" >/dev/null
	echo "built $CERTMESH_IMAGE and $CERTMESH_ECHO_IMAGE"
}

# state: the PKI (router certificates carry the routers' addresses), the
# development JWT signer and the nodes' data directories, made once.
state() {
	if [ ! -f "$CERTMESH_STATE/pki/ca.pem" ]; then
		"$certmesh" pki init --dir "$CERTMESH_STATE/pki" \
			--controllers "$(echo $controllers | tr ' ' ,)" --routers "$(echo $routers | tr ' ' ,)" \
			--hosts "edge-us-east-1=$CERTMESH_NET.20,edge-eu-west-1=$CERTMESH_NET.21,edge-ap-southeast-1=$CERTMESH_NET.22"
	fi
	if [ ! -f "$CERTMESH_STATE/auth/jwt.key" ]; then
		"$bin/devtoken" init "$CERTMESH_STATE/auth"
	fi
	for n in $controllers $routers; do
		mkdir -p "$CERTMESH_STATE/data/$n"
	done
}

# wait_ready: every node's /v1/status answers and shows six members.
wait_ready() {
	i=0
	for ip in 10 11 12 20 21 22; do
		port=9100
		[ "$ip" -ge 20 ] && port=9101
		until "$certmesh" status --json --url "http://$CERTMESH_NET.$ip:$port" 2>/dev/null | grep -c '"state": *"alive"' | grep -qx 6; do
			i=$((i + 1))
			if [ "$i" -gt 300 ]; then
				echo "cluster.sh: $CERTMESH_NET.$ip:$port not ready after a minute; see: docker/cluster.sh logs" >&2
				exit 1
			fi
			sleep 0.2
		done
	done
}

usage() {
	sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
}

case "${1:-}" in
up)
	build
	state
	compose up -d
	wait_ready
	echo "cluster up: every node sees the six."
	"$self" env
	;;
down)
	compose down -v --remove-orphans
	;;
logs)
	compose logs
	;;
token)
	[ $# -eq 2 ] || usage
	"$bin/devtoken" mint --key "$CERTMESH_STATE/auth/jwt.key" "$2"
	;;
env)
	n=$CERTMESH_NET
	s=$CERTMESH_STATE
	cat <<EOF
controllers (API, metrics): https://$n.10:8443 http://$n.10:9100  https://$n.11:8443 http://$n.11:9100  https://$n.12:8443 http://$n.12:9100
routers (clients, metrics): $n.20:3022 http://$n.20:9101  $n.21:3022 http://$n.21:9101  $n.22:3022 http://$n.22:9101
echo upstream:              $n.30:7000

log in at us-east:   "$certmesh" login --controller https://$n.10:8443 --ca "$s/pki/ca.pem" --token "\$("$self" token alice)" --dir alice
connect via eu-west: openssl s_client -quiet -connect $n.21:3022 -cert alice/cert.pem -key alice/key.pem -CAfile alice/ca.pem
rotate at eu-west:   "$certmesh" rotate --controller https://$n.11:8443 --ca "$s/pki/ca.pem" --dir alice
revoke at ap-south:  "$certmesh" revoke --controller https://$n.12:8443 --ca "$s/pki/ca.pem" --admin-cert "$s/pki/admin/cert.pem" --admin-key "$s/pki/admin/key.pem" --session "\$(sed -n 's/.*"session_id": "\(.*\)".*/\1/p' alice/session.json)"
status of a router:  "$certmesh" status --url http://$n.21:9101
EOF
	;;
*)
	usage
	;;
esac
