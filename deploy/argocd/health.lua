-- Argo CD health check for kubefledged.io ImageCache. Install it with
-- deploy/argocd/argocd-cm-patch.yaml (README: GitOps health).
--
--   Progressing  the controller has not read this generation yet, or an
--                operation runs on a cache that is not Ready
--   Healthy      Ready: every image is on its nodes (also while a refresh
--                or a joining node's warming runs)
--   Degraded     Stalled: the latest operation failed, or the cache is too
--                large to record; it pulls again once its spec changes or
--                it is refreshed
--   Suspended    the images were purged, on request
local hs = { status = "Progressing", message = "Waiting for the controller to read the cache" }
local st = obj.status
if st == nil then
  return hs
end
local generation = obj.metadata.generation
if st.observedGeneration ~= nil and generation ~= nil and st.observedGeneration < generation then
  hs.message = "Waiting for the controller to read generation " .. generation
  return hs
end
local conditions = {}
if st.conditions ~= nil then
  for _, c in ipairs(st.conditions) do
    conditions[c.type] = c
  end
end
local ready, stalled, reconciling = conditions["Ready"], conditions["Stalled"], conditions["Reconciling"]
if stalled ~= nil and stalled.status == "True" then
  if stalled.reason == "Purged" then
    hs.status = "Suspended"
  else
    hs.status = "Degraded"
  end
  hs.message = stalled.message
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = reconciling.message
  return hs
end
-- A status written before these conditions: read the operation's outcome.
if st.status == "Succeeded" then
  hs.status = "Healthy"
elseif st.status == "Failed" then
  hs.status = "Degraded"
end
if st.message ~= nil then
  hs.message = st.message
end
return hs
