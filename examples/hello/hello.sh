#!/bin/sh
# Runs in the image built from examples/hello/Containerfile.
cat /etc/hello.txt
echo "built by ${GREETER} build, running as uid $(id -u) on $(hostname)"
