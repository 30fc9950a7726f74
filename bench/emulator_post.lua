-- wrk script for bench/emulator.sh: POST creates with a unique external id per activity.
--   wrk ... -s bench/emulator_post.lua URL -- TOKEN            one create per request (URL = the collection)
--   wrk ... -s bench/emulator_post.lua URL -- TOKEN PROVIDER   a $batch of 20 creates per request (URL = .../$batch)
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

local function activity()
  counter = counter + 1
  return string.format('{"@odata.type":"#microsoft.graph.learningAssignment","assignmentType":"required",' ..
    '"learnerUserId":"b0000000-0000-4000-8000-000000000002","learningContentId":"d0000000-0000-4000-8000-000001000001",' ..
    '"status":"notStarted","externalcourseActivityId":"bench-%d-%d"}', tid, counter)
end

request = function()
  if not provider then
    return wrk.format(nil, nil, nil, activity())
  end
  local items = {}
  for i = 1, 20 do
    items[i] = string.format('{"id":"%d","method":"POST","url":"/employeeExperience/learningProviders/%s/learningCourseActivities",' ..
      '"headers":{"Content-Type":"application/json"},"body":%s}', i, provider, activity())
  end
  return wrk.format(nil, nil, nil, '{"requests":[' .. table.concat(items, ",") .. ']}')
end
