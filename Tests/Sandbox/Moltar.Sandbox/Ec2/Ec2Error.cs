namespace Moltar.Sandbox.Ec2;

/// <summary>An error answered the way EC2 answers it: an error code, a message and an HTTP status.</summary>
public sealed class Ec2Error : Exception
{
    public Ec2Error(int status, string code, string message) : base(message)
    {
        Status = status;
        Code = code;
    }

    public int Status { get; }
    public string Code { get; }

    public static Ec2Error InvalidParameterValue(string message) => new(400, "InvalidParameterValue", message);
    public static Ec2Error InvalidParameterCombination(string message) => new(400, "InvalidParameterCombination", message);
    public static Ec2Error MissingParameter(string name) => new(400, "MissingParameter", $"The request must contain the parameter {name}");
    public static Ec2Error UnknownParameter(string name) => new(400, "UnknownParameter", $"The parameter {name} is not recognized");
    public static Ec2Error InvalidFilter(string? name) => InvalidParameterValue($"The filter '{name ?? "null"}' is invalid");
    public static Ec2Error InvalidAction(string action) => new(400, "InvalidAction", $"The action {action} is not valid for this web service.");
    public static Ec2Error MissingAction() => new(400, "MissingAction", "The request must contain the parameter Action");
    public static Ec2Error NoSuchVersion(string version) => new(400, "NoSuchVersion", $"The requested version ({version}) of service AmazonEC2 does not exist");
    public static Ec2Error DryRunOperation() => new(412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.");
    public static Ec2Error MissingAuthenticationToken() => new(401, "MissingAuthenticationToken", "Request is missing Authentication Token");
    public static Ec2Error AuthFailure(string message = "AWS was not able to validate the provided access credentials") => new(401, "AuthFailure", message);
    public static Ec2Error RequestLimitExceeded() => new(503, "RequestLimitExceeded", "Request limit exceeded.");
    public static Ec2Error InternalError() => new(500, "InternalError", "An internal error has occurred");
    public static Ec2Error Unavailable() => new(503, "Unavailable", "The server is overloaded and can't handle the request.");
}
