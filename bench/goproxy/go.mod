module keyrelay.bench/goproxy

go 1.19
