-- wrk script for bench/emulator.sh: POST creates with a unique external id per request.
local counter = 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  token = args[1]
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Bearer " .. token
  wrk.headers["Content-Type"] = "application/json"
  bad = 0
end

request = function()
  counter = counter + 1
  local body = string.format('{"@odata.type":"#microsoft.graph.learningAssignment","assignmentType":"required",' ..
    '"learnerUserId":"b0000000-0000-4000-8000-000000000002","learningContentId":"d0000000-0000-4000-8000-000001000001",' ..
    '"status":"notStarted","externalcourseActivityId":"bench-%d-%d"}', tid, counter)
  return wrk.format(nil, nil, nil, body)
end

response = function(status)
  if status ~= 201 then bad = bad + 1 end
end

function done(summary, latency, requests)
  -- per-thread counters are not visible here; wrk prints Non-2xx itself
end
