-- Argo CD health check for erpsync.io/ErpSync. Install it as the argocd-cm key
-- resource.customizations.health.erpsync.io_ErpSync (see README, GitOps).
-- It reads conditions, never phase, and ignores conditions computed for an
-- older generation, so the reported health never goes stale.
local hs = {}
local gen = obj.metadata.generation
if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "sync suspended"
  return hs
end
local st = obj.status
if st == nil or st.conditions == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the first sync"
  return hs
end
local c = {}
for _, x in ipairs(st.conditions) do
  c[x.type] = x
end
if c.Stalled ~= nil and c.Stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = c.Stalled.message
  return hs
end
if c.Ready ~= nil and c.Ready.status == "False" and c.Ready.observedGeneration == gen then
  hs.status = "Degraded"
  hs.message = c.Ready.message
  return hs
end
if c.Ready ~= nil and c.Ready.status == "True" and st.observedGeneration == gen then
  hs.status = "Healthy"
  hs.message = c.Ready.message
  return hs
end
hs.status = "Progressing"
hs.message = "sync in progress"
return hs
