# A FROM-scratch image holding only the static tlspeek, for `kubectl debug` ephemeral containers
# (the distroless istio-proxy has no shell, tar or libpcap).
#
#   bin=$(scripts/build-static | tail -1)
#   docker build -t REGISTRY/tlspeek:TAG -f Dockerfile "$(dirname "$bin")"
#   docker push REGISTRY/tlspeek:TAG
#   kubectl debug -it POD --image=REGISTRY/tlspeek:TAG --target=istio-proxy --profile=netadmin -- /tlspeek -i eth0
FROM scratch
COPY tlspeek /tlspeek
ENTRYPOINT ["/tlspeek"]
CMD ["-i", "any"]
