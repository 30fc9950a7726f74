-- wrk script for bench/emulator.sh: POST /v1.0/$batch with 20 creates (unique external ids) per request.
local counter = 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Bearer " .. args[1]
  wrk.headers["Content-Type"] = "application/json"
  provider = args[2]
end

request = function()
  local items = {}
  for i = 1, 20 do
    counter = counter + 1
    items[i] = string.format('{"id":"%d","method":"POST","url":"/employeeExperience/learningProviders/%s/learningCourseActivities",' ..
      '"headers":{"Content-Type":"application/json"},"body":{"@odata.type":"#microsoft.graph.learningAssignment",' ..
      '"assignmentType":"required","learnerUserId":"b0000000-0000-4000-8000-000000000002",' ..
      '"learningContentId":"d0000000-0000-4000-8000-000001000001","status":"notStarted",' ..
      '"externalcourseActivityId":"bench-b-%d-%d"}}', i, provider, tid, counter)
  end
  return wrk.format(nil, nil, nil, '{"requests":[' .. table.concat(items, ",") .. ']}')
end
