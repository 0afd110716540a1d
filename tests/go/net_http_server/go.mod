module fixture/net_http_server

go 1.19
