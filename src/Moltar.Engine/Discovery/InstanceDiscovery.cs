using Amazon.EC2;
using Amazon.EC2.Model;
using Amazon.Runtime;
using Moltar.Engine.Aws;

namespace Moltar.Engine.Discovery;

/// <summary>Finds instances with server-side filters, reading every page, and shapes them for people.</summary>
public sealed class InstanceDiscovery
{
    public const int PageSize = 1000;

    private readonly AwsSession _session;
    private readonly MoltarContext _context;
    private readonly Action<string> _verbose;

    public InstanceDiscovery(AwsSession session, MoltarContext context, Action<string>? verbose = null)
    {
        _session = session;
        _context = context;
        _verbose = verbose ?? (_ => { });
    }

    /// <summary>The filters DescribeInstances gets for a selection (never an empty list: EC2 rejects those).</summary>
    public static List<Filter> ServerFilters(InstanceSelection selection, MoltarContext context)
    {
        var filters = new List<Filter>();
        void Add(string name, params string[] values) => filters.Add(new Filter { Name = name, Values = values.ToList() });

        if (selection.InstanceIds.Count > 0) Add("instance-id", selection.InstanceIds.ToArray());
        if (!string.IsNullOrEmpty(selection.Project)) Add($"tag:{context.TagName("Project")}", selection.Project!);
        if (!string.IsNullOrEmpty(selection.Environment)) Add($"tag:{context.TagName("Environment")}", selection.Environment!);
        if (!string.IsNullOrEmpty(selection.Cluster)) Add($"tag:{context.TagName("Cluster")}", selection.Cluster!);
        // EC2 ORs the values of one filter, so only one package narrows server-side; the rest are checked here.
        if (selection.Packages.Count > 0) Add($"tag:{context.TagName("Packages")}", $"*|{selection.Packages[0]}|*");
        foreach (var (key, values) in selection.Tags)
        {
            if (values.Length > 0) Add($"tag:{key}", values);
        }
        if (selection.States.Count > 0) Add("instance-state-name", selection.States.ToArray());
        return filters;
    }

    public async Task<IReadOnlyList<MoltarInstance>> FindAsync(InstanceSelection selection, CancellationToken cancellationToken)
    {
        var filters = ServerFilters(selection, _context);
        _verbose($"DescribeInstances in {_session.Region.SystemName}" +
                 (_session.EndpointUrl is null ? "" : $" at {_session.EndpointUrl}") +
                 $" with credentials from {_session.CredentialSource}; filters: " +
                 (filters.Count == 0 ? "(none)" : string.Join("; ", filters.Select(f => $"{f.Name}={string.Join(",", f.Values)}"))));

        var found = new List<MoltarInstance>();
        int pages = 0;
        using var client = _session.CreateEc2Client();
        try
        {
            // The next page is asked for as soon as this one's token is known, so shaping this page overlaps
            // with the server producing (and the SDK parsing) the next one; the SDK's paginator waits instead.
            var pending = client.DescribeInstancesAsync(PageRequest(filters, null), cancellationToken);
            while (pending is not null)
            {
                var page = await pending.ConfigureAwait(false);
                pages++;
                pending = string.IsNullOrEmpty(page.NextToken)
                    ? null
                    : client.DescribeInstancesAsync(PageRequest(filters, page.NextToken), cancellationToken);
                foreach (var reservation in page.Reservations ?? new List<Reservation>())
                {
                    foreach (var instance in reservation.Instances ?? new List<Instance>())
                        found.Add(ToMoltarInstance(instance));
                }
            }
        }
        catch (AmazonServiceException e)
        {
            throw ApiError(e);
        }
        catch (Exception e) when (e is not MoltarException && e is not OperationCanceledException)
        {
            throw new MoltarException("ApiUnreachable", FailureCategory.ConnectionError,
                $"EC2 in {_session.Region.SystemName}{(_session.EndpointUrl is null ? "" : $" at {_session.EndpointUrl}")} could not be reached: {e.Message}", e);
        }
        _verbose($"DescribeInstances read {pages} page(s), {found.Count} instance(s)");

        // Short ids are unique among everything the server-side filters returned, so a short id read from
        // one listing still names one instance when typed back as -Name with the same selection.
        var shortIds = ShortIds.Assign(found.Select(i => i.InstanceId));
        foreach (var instance in found)
            instance.ShortId = shortIds[instance.InstanceId];

        var terms = NameMatcher.Terms(selection.Name);
        if (selection.Packages.Count > 0 || terms.Count > 0)
            found.RemoveAll(i => !selection.Packages.All(p => i.Packages.Contains(p, StringComparer.Ordinal)) || !NameMatcher.Matches(i, terms));
        found.Sort(ByNameThenId);
        if (selection.First && found.Count > 1)
            found.RemoveRange(1, found.Count - 1);
        return found;
    }

    /// <summary>Listing order: by Name (case-insensitive; unnamed last), then by instance id.</summary>
    private static int ByNameThenId(MoltarInstance a, MoltarInstance b)
    {
        int byName = StringComparer.OrdinalIgnoreCase.Compare(a.Name ?? "\uffff", b.Name ?? "\uffff");
        return byName != 0 ? byName : string.CompareOrdinal(a.InstanceId, b.InstanceId);
    }

    private static DescribeInstancesRequest PageRequest(List<Filter> filters, string? nextToken) => new()
    {
        Filters = filters.Count == 0 ? null : filters,
        MaxResults = PageSize,
        NextToken = nextToken,
    };

    private MoltarException ApiError(AmazonServiceException e)
    {
        string where = $"EC2 in {_session.Region.SystemName}{(_session.EndpointUrl is null ? "" : $" at {_session.EndpointUrl}")}";
        string requestId = string.IsNullOrEmpty(e.RequestId) ? "" : $" (request id {e.RequestId})";
        bool credentials = e.ErrorCode is "AuthFailure" or "UnrecognizedClientException" or "InvalidClientTokenId"
            or "ExpiredToken" or "RequestExpired" or "SignatureDoesNotMatch" or "MissingAuthenticationToken";
        if (credentials)
            return new MoltarException("AwsCredentialsRejected", FailureCategory.AuthenticationError,
                $"{where} refused the credentials from {_session.CredentialSource}: {e.ErrorCode}: {e.Message}{requestId}. " +
                "Refresh them (aws sso login, new keys, or a new session token) or pick another profile with -ProfileName.", e);
        return new MoltarException("ApiFailed", FailureCategory.InvalidOperation,
            $"{where} failed after retries: {e.ErrorCode ?? e.StatusCode.ToString()}: {e.Message}{requestId}.", e);
    }

    private MoltarInstance ToMoltarInstance(Instance instance)
    {
        var tags = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var tag in instance.Tags ?? new List<Tag>())
            tags[tag.Key] = tag.Value ?? "";
        var roles = new InstanceTags(tags, _context);

        string? publicIp = NonEmpty(instance.PublicIpAddress);
        string? privateIp = NonEmpty(instance.PrivateIpAddress);
        return new MoltarInstance
        {
            InstanceId = instance.InstanceId,
            Name = roles.Name,
            Project = roles.Role("Project"),
            Environment = roles.Role("Environment"),
            Cluster = roles.Role("Cluster"),
            Packages = roles.Packages ?? Array.Empty<string>(),
            State = instance.State?.Name?.Value ?? "",
            InstanceType = instance.InstanceType?.Value,
            AvailabilityZone = instance.Placement?.AvailabilityZone,
            Region = _session.Region.SystemName,
            PrivateIpAddress = privateIp,
            PublicIpAddress = publicIp,
            PrivateDnsName = NonEmpty(instance.PrivateDnsName),
            PublicDnsName = NonEmpty(instance.PublicDnsName),
            Address = ChooseAddress(_context.AddressType, publicIp, privateIp),
            LaunchTime = instance.LaunchTime,
            Tags = tags,
        };
    }

    public static string? ChooseAddress(AddressType addressType, string? publicIp, string? privateIp) => addressType switch
    {
        AddressType.Public => publicIp,
        AddressType.Private => privateIp,
        _ => publicIp ?? privateIp,
    };

    private static string? NonEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
