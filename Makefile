# Shortcuts for ./dev.sh, which needs nothing but bash (make may be missing on a fresh Debian).
.PHONY: demo test bench s3-server ui dev clean

demo test bench s3-server ui:
	./dev.sh $@

dev: ui

clean:
	rm -rf .media_pipeline .dagster_home benchmarks/.data
