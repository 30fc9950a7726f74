-- busted output handler: busted's own utfTerminal output, then one plain closing line
-- "N passed, N failed, N skipped" that CI reads (errors count as failures).
return function(options)
  local busted = require 'busted'
  local handler = require 'busted.outputHandlers.utfTerminal'(options)
  busted.subscribe({ 'suite', 'end' }, function()
    local failed = #handler.failures + #handler.errors
    io.write(string.format('\n%d passed, %d failed, %d skipped\n',
      #handler.successes, failed, #handler.pendings))
    io.flush()
    return nil, true
  end)
  return handler
end
