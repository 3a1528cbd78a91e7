// Reads every page of DescribeInstances (instance-state-name=running, MaxResults=1000: the request
// Get-MoltarInstance sends) from an EC2 endpoint with the SDK's paginator, Runs times in one process, and
// prints one JSON line: per-run milliseconds, instances, pages, resident memory before the first run and peak.
//   dotnet RawPaginator.dll --endpoint http://127.0.0.1:PORT --region us-east-1 --runs 5
using System.Diagnostics;
using System.Text.Json;
using Amazon.EC2;
using Amazon.EC2.Model;
using Amazon.Runtime;

string endpoint = "", region = "us-east-1";
int runs = 5;
for (int i = 0; i + 1 < args.Length; i += 2)
{
    switch (args[i])
    {
        case "--endpoint": endpoint = args[i + 1]; break;
        case "--region": region = args[i + 1]; break;
        case "--runs": runs = int.Parse(args[i + 1]); break;
        default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
    }
}
if (endpoint.Length == 0) { Console.Error.WriteLine("--endpoint is required"); return 2; }

long rssBefore = ProcStatus("VmRSS");
var times = new List<double>();
int instances = 0, pages = 0;
for (int run = 0; run < runs; run++)
{
    var clock = Stopwatch.StartNew();
    var config = new AmazonEC2Config { ServiceURL = endpoint, AuthenticationRegion = region };
    using var client = new AmazonEC2Client(new BasicAWSCredentials("AKIAMOLTARSANDBOX001", "moltar-sandbox-secret"), config);
    var request = new DescribeInstancesRequest
    {
        Filters = new List<Filter> { new() { Name = "instance-state-name", Values = new List<string> { "running" } } },
        MaxResults = 1000,
    };
    instances = 0; pages = 0;
    await foreach (var page in client.Paginators.DescribeInstances(request).Responses)
    {
        pages++;
        foreach (var reservation in page.Reservations ?? new List<Reservation>())
            instances += reservation.Instances?.Count ?? 0;
    }
    times.Add(clock.Elapsed.TotalMilliseconds);
}

Console.WriteLine(JsonSerializer.Serialize(new
{
    milliseconds = times,
    instances,
    pages,
    rssBeforeBytes = rssBefore,
    peakRssBytes = ProcStatus("VmHWM"),
}));
return 0;

// A /proc/self/status memory field in bytes (0 where there is no /proc).
static long ProcStatus(string field)
{
    try
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        }
    }
    catch (IOException) { }
    return 0;
}
