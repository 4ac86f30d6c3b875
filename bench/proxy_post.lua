-- wrk script for bench/proxy_methods.sh: the request of one mode (first script argument):
--   post     POST with a 220-byte JSON body and Content-Length
--   chunked  the same body as a chunked upload, in three chunks
local body = '{"id":12345,"user":"ada@example.com","items":[{"sku":"A-100","qty":2},{"sku":"B-200","qty":1}],' ..
             '"note":"deliver after five, ring twice","coupon":"WINTER26","total":"42.50","currency":"EUR","v":1}'
local mode = "post"
function init(args) mode = args[1] or "post" end
function request()
  if mode == "chunked" then
    local a, b, c = body:sub(1, 80), body:sub(81, 160), body:sub(161)
    return "POST /orders HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" ..
           string.format("%x\r\n%s\r\n%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n", #a, a, #b, b, #c, c)
  end
  return wrk.format("POST", "/orders", { ["Host"] = "bench", ["Content-Type"] = "application/json" }, body)
end
