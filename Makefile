.PHONY: demo serve test lint format bench
demo:   ; ./dev demo
serve:  ; ./dev serve
test:   ; ./dev test
lint:   ; ./dev lint
format: ; ./dev format
bench:  ; ./dev bench
