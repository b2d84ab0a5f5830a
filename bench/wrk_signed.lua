-- wrk script for bench/ingest.py: replays pre-signed webhook requests.
-- Data file lines: "<X-Timestamp>\t<X-Signature>\t<body>"; line i goes to thread i % nthreads,
-- so no two threads send the same event. Usage: wrk ... -s wrk_signed.lua URL -- FILE NTHREADS
local threads = {}
local reqs = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  local path, n = args[1], tonumber(args[2])
  local i = 0
  for line in io.lines(path) do
    if i % n == tid then
      local ts, sig, body = line:match("^(%S+)\t(%S+)\t(.*)$")
      reqs[#reqs + 1] = wrk.format("POST", "/webhooks/customer",
        {["Content-Type"] = "application/json", ["X-Timestamp"] = ts, ["X-Signature"] = sig}, body)
    end
    i = i + 1
  end
end

function request()
  counter = counter + 1
  if counter > #reqs then counter = 1 end
  return reqs[counter]
end
