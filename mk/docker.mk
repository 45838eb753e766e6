# Containerised testnets (docker/): a private Docker engine, stand-in images, the docker suite.
# Included from the top Makefile.  Needs root (dockerd).
DVP_DOCKER_RUN ?= /run/dvp-docker
DVP_DOCKER_HOST := unix://$(DVP_DOCKER_RUN)/docker.sock
DOCKER_ENV := DVP_DOCKER_RUN=$(DVP_DOCKER_RUN) DOCKER_HOST=$(DVP_DOCKER_HOST)

.PHONY: docker-engine docker-engine-stop docker-images test-docker

## Start dvp's own dockerd (installs docker.io and docker-compose when missing)
docker-engine:
	$(DOCKER_ENV) bash docker/engine.sh start

## Remove dvp's containers and stop the dockerd docker-engine started
docker-engine-stop:
	$(DOCKER_ENV) bash docker/engine.sh stop

## Stand-in images under the official names, from the native binaries (skipped when up to date)
docker-images: setup docker-engine
	$(DOCKER_ENV) bash docker/standins.sh

## Engine, stand-in images, the docker suite on the docker runtime; the engine is stopped whatever happens
test-docker: setup
	@status=0; \
	{ $(DOCKER_ENV) bash docker/engine.sh start \
	  && time $(DOCKER_ENV) bash docker/standins.sh \
	  && time $(DOCKER_ENV) DVP_RUNTIME=docker DVP_DOCKER_REQUIRED=1 \
	       $(BIN)/python -m pytest -m docker tests/docker $(PYTEST_ARGS); } || status=$$?; \
	$(DOCKER_ENV) bash docker/engine.sh stop || true; \
	exit $$status
