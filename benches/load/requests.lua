-- wrk script for scripts/bench-load: each thread sends its own share of the requests in
-- FILE (lines "SIGNATURE<TAB>BODY"), each once; past the end it wraps around (replays,
-- which a verifying voxgate refuses: wrk then reports non-2xx responses).
-- Usage: wrk -s requests.lua URL -- FILE THREADS CERT_URL
local threads = {}
local requests = {}
local counter = 0

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local path, nthreads, cert_url = args[1], tonumber(args[2]), args[3]
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == id then
      local signature, body = line:match("^([^\t]*)\t(.*)$")
      requests[#requests + 1] = wrk.format("POST", "/alexa", {
        ["Content-Type"] = "application/json",
        ["SignatureCertChainUrl"] = cert_url,
        ["Signature-256"] = signature,
      }, body)
    end
    i = i + 1
  end
end

function request()
  counter = counter + 1
  if counter > #requests then counter = 1 end
  return requests[counter]
end
